"""Our generic pyinfra operations and facts, with no knowledge of the app: file operations,
change stamps, systemd units, the UFW policy, output shown to the operator, templates, the
shared facts, nginx's tested changes, and what every entry point does first on a host
(context), and pyinfra's ``@deploy`` typed as what it returns (typed: import ``deploy``
from there). Imports config and speed only."""
