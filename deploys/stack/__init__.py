"""One module per part of a host: packages, app user, virtualenv, app service, nginx,
HTTPS, firewall, load balancer, fleet (rolling batches), retiring apps. Imports the layers
below: config, speed, ops, release."""
