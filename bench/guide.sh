#!/bin/sh
# Baseline for bench/run.py: the guide's steps as one plain shell script, run over SSH with
# sudo on a fresh Debian 12 host (as the guide does by hand). Adapted only where Debian 12
# forces it: system pip is blocked (PEP 668), so the venv comes from python3-venv; uwsgi is
# compiled from source as in the guide (hence python3-dev and a compiler).
set -eu
APP=myproject
USER_NAME=$(id -un)
HOME_DIR=$HOME/$APP

sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip python3-dev python3-venv \
    build-essential nginx ufw >/dev/null

mkdir -p "$HOME_DIR"
cd "$HOME_DIR"
python3 -m venv ${APP}env
${APP}env/bin/pip install -q uwsgi flask

cat > $APP.py <<'PY'
from flask import Flask
app = Flask(__name__)

@app.route("/")
def hello():
    return "<h1 style='color:blue'>Hello There!</h1>"

if __name__ == "__main__":
    app.run(host='0.0.0.0')
PY
cat > wsgi.py <<PY
from $APP import app

if __name__ == "__main__":
    app.run()
PY
cat > $APP.ini <<INI
[uwsgi]
module = wsgi:app

master = true
processes = 5

socket = $APP.sock
chmod-socket = 660
vacuum = true

die-on-term = true
INI
chmod 755 "$HOME"  # the guide's 502 on home dirs that www-data cannot traverse

sudo tee /etc/systemd/system/$APP.service >/dev/null <<UNIT
[Unit]
Description=uWSGI instance to serve $APP
After=network.target

[Service]
User=$USER_NAME
Group=www-data
WorkingDirectory=$HOME_DIR
Environment="PATH=$HOME_DIR/${APP}env/bin"
ExecStart=$HOME_DIR/${APP}env/bin/uwsgi --ini $APP.ini

[Install]
WantedBy=multi-user.target
UNIT
sudo systemctl daemon-reload
sudo systemctl start $APP
sudo systemctl enable $APP

sudo tee /etc/nginx/sites-available/$APP >/dev/null <<SITE
server {
    listen 80;
    server_name _;

    location / {
        include uwsgi_params;
        uwsgi_pass unix:$HOME_DIR/$APP.sock;
    }
}
SITE
sudo ln -sf /etc/nginx/sites-available/$APP /etc/nginx/sites-enabled
sudo rm -f /etc/nginx/sites-enabled/default
sudo nginx -t
sudo systemctl restart nginx

sudo ufw allow OpenSSH
sudo ufw allow 'Nginx Full'
sudo ufw --force enable
