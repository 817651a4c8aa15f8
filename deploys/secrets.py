"""Where the secrets' helpers lived before deploys/ had layers: group data files written then
(``from deploys.secrets import env_secret``) keep working. New ones import them from
deploys.config.secrets."""

from deploys.config.secrets import MissingSecret, Secret, env_secret, is_unset

__all__ = ["MissingSecret", "Secret", "env_secret", "is_unset"]
