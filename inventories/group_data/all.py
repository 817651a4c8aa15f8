"""Settings for every environment. Defaults live in deploys/settings.py; set here only what
differs for all of your hosts, e.g.:

    app_name = "myproject"
    server_name = "example.com"
    processes = 4
    env = {"FLASK_SECRET_KEY": os.environ["FLASK_SECRET_KEY"]}
"""
