"""Settings for every environment. Defaults live in deploys/config/settings.py; set here only what
differs for all of your hosts, e.g.:

    app_name = "myproject"
    server_name = "example.com"
    processes = 4
    from deploys.config.secrets import env_secret
    env = {"FLASK_SECRET_KEY": env_secret("FLASK_SECRET_KEY")}
"""
