"""Deploys for a Flask app served by uWSGI behind Nginx, one module per concern."""
