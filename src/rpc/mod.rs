//! oslo.messaging RPC over AMQP (RabbitMQ): framing, server, client.
