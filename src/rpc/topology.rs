//! The exchanges and queues oslo.messaging declares, with exactly the flags and
//! arguments of `impl_rabbit.py` so that we and Python services share a broker
//! without a 406 PRECONDITION_FAILED. Declarations are plain data (testable);
//! [`declare`] applies them on a channel.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::config::RabbitConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDecl {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
}

/// A queue argument value, typed as py-amqp sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueArg {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDecl {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: Vec<(String, QueueArg)>,
    /// None for queues reached through the default exchange (reply queues).
    pub binding: Option<Binding>,
}

impl QueueDecl {
    pub fn field_table(&self) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in &self.arguments {
            let v = match v {
                // py-amqp writes ints that fit as 'I' (signed 32), others as 'l'.
                QueueArg::Int(i) => match i32::try_from(*i) {
                    Ok(i) => AMQPValue::LongInt(i),
                    Err(_) => AMQPValue::LongLongInt(*i),
                },
                QueueArg::Str(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
            };
            t.insert(ShortString::from(k.clone()), v);
        }
        t
    }
}

/// What one consumer set-up declares, in declaration order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Topology {
    pub exchanges: Vec<ExchangeDecl>,
    pub queues: Vec<QueueDecl>,
}

/// `_get_queue_arguments(rabbit_ha_queues, ttl, quorum, ...)`.
pub fn queue_arguments(ha: bool, ttl_secs: u32, quorum: bool) -> Vec<(String, QueueArg)> {
    let mut args = Vec::new();
    if ha {
        args.push(("x-ha-policy".into(), QueueArg::Str("all".into())));
    }
    if quorum {
        args.push(("x-queue-type".into(), QueueArg::Str("quorum".into())));
    }
    if ttl_secs > 0 {
        args.push((
            "x-expires".into(),
            QueueArg::Int(i64::from(ttl_secs) * 1000),
        ));
    }
    args
}

/// The control exchange (`nova`) as `topic_send` and topic consumers declare it.
pub fn topic_exchange(cfg: &RabbitConfig, name: &str) -> ExchangeDecl {
    ExchangeDecl {
        name: name.into(),
        kind: ExchangeKind::Topic,
        durable: cfg.durable(),
        auto_delete: cfg.amqp_auto_delete,
    }
}

/// `<topic>_fanout`, as `fanout_send` and fanout consumers declare it.
pub fn fanout_exchange(topic: &str) -> ExchangeDecl {
    ExchangeDecl {
        name: format!("{topic}_fanout"),
        kind: ExchangeKind::Fanout,
        durable: false,
        auto_delete: true,
    }
}

fn topic_queue(cfg: &RabbitConfig, exchange: &str, name: &str) -> QueueDecl {
    QueueDecl {
        name: name.into(),
        durable: cfg.durable(),
        auto_delete: cfg.amqp_auto_delete,
        arguments: queue_arguments(cfg.rabbit_ha_queues, 0, cfg.rabbit_quorum_queue),
        binding: Some(Binding {
            exchange: exchange.into(),
            routing_key: name.into(),
        }),
    }
}

/// What an RPC server for `topic` on `host` declares: queues `T` and `T.H` on the
/// control exchange and `T_fanout_<fanout_id>` on the fanout exchange.
pub fn server_topology(cfg: &RabbitConfig, topic: &str, host: &str, fanout_id: &str) -> Topology {
    let ex = topic_exchange(cfg, &cfg.control_exchange);
    let fan = fanout_exchange(topic);
    let fanout_queue = QueueDecl {
        name: format!("{topic}_fanout_{fanout_id}"),
        durable: false,
        auto_delete: false,
        arguments: queue_arguments(cfg.rabbit_ha_queues, cfg.rabbit_transient_queues_ttl, false),
        binding: Some(Binding {
            exchange: fan.name.clone(),
            routing_key: topic.into(),
        }),
    };
    Topology {
        queues: vec![
            topic_queue(cfg, &ex.name, topic),
            topic_queue(cfg, &ex.name, &format!("{topic}.{host}")),
            fanout_queue,
        ],
        exchanges: vec![ex, fan],
    }
}

/// A caller's `reply_<uuid>` queue (`declare_direct_consumer`).
pub fn reply_queue(cfg: &RabbitConfig, name: &str) -> QueueDecl {
    QueueDecl {
        name: name.into(),
        durable: false,
        auto_delete: false,
        arguments: queue_arguments(cfg.rabbit_ha_queues, cfg.rabbit_transient_queues_ttl, false),
        binding: None,
    }
}

/// The queue oslo.messaging's notifier declares for a notification topic
/// (`versioned_notifications.info`), bound to the control exchange under its
/// name, so that notifications wait for a consumer that is not up yet.
pub fn notification_queue(cfg: &RabbitConfig, exchange: &str, routing_key: &str) -> QueueDecl {
    QueueDecl {
        name: routing_key.into(),
        durable: cfg.durable(),
        auto_delete: false,
        arguments: queue_arguments(cfg.rabbit_ha_queues, 0, false),
        binding: Some(Binding {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
        }),
    }
}

pub async fn declare_exchange(ch: &Channel, e: &ExchangeDecl) -> Result<(), lapin::Error> {
    ch.exchange_declare(
        &e.name,
        e.kind.clone(),
        ExchangeDeclareOptions {
            durable: e.durable,
            auto_delete: e.auto_delete,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

pub async fn declare_queue(ch: &Channel, q: &QueueDecl) -> Result<(), lapin::Error> {
    ch.queue_declare(
        &q.name,
        QueueDeclareOptions {
            durable: q.durable,
            auto_delete: q.auto_delete,
            ..Default::default()
        },
        q.field_table(),
    )
    .await?;
    if let Some(b) = &q.binding {
        ch.queue_bind(
            &q.name,
            &b.exchange,
            &b.routing_key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// Declare every exchange, then every queue with its binding.
pub async fn declare(ch: &Channel, t: &Topology) -> Result<(), lapin::Error> {
    for e in &t.exchanges {
        declare_exchange(ch, e).await?;
    }
    for q in &t.queues {
        declare_queue(ch, q).await?;
    }
    Ok(())
}

/// RabbitMQ's 406 for an exchange or queue that exists with another `durable`
/// flag (the case oslo falls back from).
pub fn is_durable_mismatch(e: &lapin::Error) -> bool {
    matches!(e, lapin::Error::ProtocolError(p) if p.get_message().as_str().contains("inequivalent arg 'durable'"))
}

/// oslo's `_declare_fallback_nondurable`: the same topology with the exchanges
/// and queues non-durable, used when the broker already has them so (a control
/// exchange shared with services configured differently).
pub fn non_durable(t: &Topology) -> Topology {
    let mut t = t.clone();
    for e in &mut t.exchanges {
        e.durable = false;
    }
    for q in &mut t.queues {
        q.durable = false;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::config::TransportUrl;
    use super::*;

    fn cfg() -> RabbitConfig {
        RabbitConfig::new(TransportUrl::parse("rabbit://g:g@h/").unwrap())
    }

    #[test]
    fn default_compute_topology() {
        let t = server_topology(&cfg(), "compute", "node1", "abc");
        assert_eq!(
            t.exchanges[0],
            ExchangeDecl {
                name: "nova".into(),
                kind: ExchangeKind::Topic,
                durable: false,
                auto_delete: false
            }
        );
        assert_eq!(
            t.exchanges[1],
            ExchangeDecl {
                name: "compute_fanout".into(),
                kind: ExchangeKind::Fanout,
                durable: false,
                auto_delete: true
            }
        );
        let names: Vec<_> = t.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["compute", "compute.node1", "compute_fanout_abc"]);
        assert!(t.queues[0].arguments.is_empty());
        assert_eq!(
            t.queues[1].binding.as_ref().unwrap().routing_key,
            "compute.node1"
        );
        assert_eq!(
            t.queues[2].arguments,
            vec![("x-expires".to_string(), QueueArg::Int(1_800_000))]
        );
        assert_eq!(
            t.queues[2].binding.as_ref().unwrap().exchange,
            "compute_fanout"
        );
        assert_eq!(
            t.queues[2].field_table().inner().get("x-expires"),
            Some(&AMQPValue::LongInt(1_800_000))
        );
    }

    #[test]
    fn quorum_and_durable() {
        let mut c = cfg();
        c.rabbit_quorum_queue = true;
        let t = server_topology(&c, "compute-alt", "h", "u");
        assert!(t.exchanges[0].durable);
        assert!(t.queues[0].durable && t.queues[1].durable);
        assert_eq!(
            t.queues[0].arguments,
            vec![("x-queue-type".to_string(), QueueArg::Str("quorum".into()))]
        );
        // fanout queues stay transient and classic
        assert!(!t.queues[2].durable);
        assert_eq!(t.queues[2].arguments.len(), 1);
        let mut c = cfg();
        c.amqp_durable_queues = true;
        c.rabbit_ha_queues = true;
        let r = reply_queue(&c, "reply_x");
        assert!(!r.durable && r.binding.is_none());
        assert_eq!(
            r.arguments[0],
            ("x-ha-policy".to_string(), QueueArg::Str("all".into()))
        );
        assert!(server_topology(&c, "t", "h", "u").queues[0].durable);
    }
}
