"""A small app deployed from its uv.lock: it says which versions it runs with."""

from importlib.metadata import version

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"locked runs Flask {version('flask')}\n"

    @app.get("/versions")
    def versions():
        names = ("flask", "werkzeug", "jinja2", "click", "itsdangerous", "blinker", "markupsafe")
        return jsonify({name: version(name) for name in names})

    return app
