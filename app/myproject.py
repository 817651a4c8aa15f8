"""The guide's sample Flask app."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    """The guide's greeting."""
    return "<h1 style='color:blue'>Hello There!</h1>"


if __name__ == "__main__":
    app.run(host="127.0.0.1")
