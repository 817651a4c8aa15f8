"""What the operator asked for and where it goes, as plain Python (no pyinfra: tested
without it): the settings and their validation, a host's plan (its apps, fleet, HTTPS), the
layout of an app on a host, secrets, the app's dependencies and shipped files, and the
fingerprints of releases and virtualenvs. Imports nothing else of deploys."""
