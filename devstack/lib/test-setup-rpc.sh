# Set-up for the RPC integration tests (sourced by devstack/run-tests.sh after
# RabbitMQ and the venv are ready). The tests create a RabbitMQ vhost of their own
# with rabbitmqctl (installed with rabbitmq-server) and put a socat TLS proxy in
# front of the broker for the ssl = True test.
nd_apt_install socat
