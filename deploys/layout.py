"""Where everything lives on the host, derived from the settings in one place."""

from __future__ import annotations

from dataclasses import dataclass

from deploys.settings import Settings


@dataclass(frozen=True)
class Layout:
    """Paths on the host for one app."""

    app: str

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(settings.app_name)

    @property
    def root(self) -> str:
        return f"/srv/{self.app}"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def venvs(self) -> str:
        return f"{self.root}/venvs"

    @property
    def venv(self) -> str:
        return f"{self.root}/venv"

    @property
    def state(self) -> str:
        """Records of what configuration each service last applied (see converge.py)."""
        return f"{self.root}/state"

    @property
    def etc(self) -> str:
        return f"/etc/{self.app}"

    @property
    def ini(self) -> str:
        return f"{self.etc}/uwsgi.ini"

    @property
    def env_file(self) -> str:
        return f"{self.etc}/env"

    @property
    def unit_name(self) -> str:
        return f"{self.app}.service"

    @property
    def unit(self) -> str:
        return f"/etc/systemd/system/{self.unit_name}"

    @property
    def run_dir(self) -> str:
        return f"/run/{self.app}"

    @property
    def socket(self) -> str:
        return f"{self.run_dir}/{self.app}.sock"

    @property
    def site_available(self) -> str:
        return f"/etc/nginx/sites-available/{self.app}"

    @property
    def site_last_good(self) -> str:
        """Copy of the site as it last passed ``nginx -t`` and went live."""
        return f"{self.state}/nginx-site.good"

    @property
    def site_enabled(self) -> str:
        return f"/etc/nginx/sites-enabled/{self.app}"
