"""WSGI entry point: uWSGI loads ``wsgi:app``."""

from myproject import app

if __name__ == "__main__":
    app.run()
