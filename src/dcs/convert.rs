//! Conversions between the wire types (proto) and the state machine's types, with request validation. Sizes are
//! checked against `dcs.limits` by `limits.rs`, where a write enters and on the leader.

use super::core::DcsError;
use super::limits::Limits;
use super::types::{Compare, CompareTarget, Event, EventKind, KeyValue, Op, Txn};
use crate::proto;

impl From<KeyValue> for proto::KeyValue {
    fn from(kv: KeyValue) -> proto::KeyValue {
        proto::KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

impl From<proto::KeyValue> for KeyValue {
    fn from(kv: proto::KeyValue) -> KeyValue {
        KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

impl From<Event> for proto::Event {
    fn from(e: Event) -> proto::Event {
        let kind = match e.kind {
            EventKind::Put => proto::event::Kind::Put,
            EventKind::Delete => proto::event::Kind::Delete,
        };
        proto::Event {
            kind: kind as i32,
            kv: Some(e.kv.into()),
        }
    }
}

impl From<proto::Event> for Event {
    fn from(e: proto::Event) -> Event {
        let kind = match proto::event::Kind::try_from(e.kind) {
            Ok(proto::event::Kind::Delete) => EventKind::Delete,
            _ => EventKind::Put,
        };
        Event {
            kind,
            kv: e.kv.map(KeyValue::from).unwrap_or_default(),
        }
    }
}

fn check_key(key: &[u8], prefix: bool) -> Result<(), DcsError> {
    if key.is_empty() && !prefix {
        return Err(DcsError::Invalid("empty key".into()));
    }
    Ok(())
}

fn op_from(op: proto::Op) -> Result<Op, DcsError> {
    match op.op {
        Some(proto::op::Op::Put(p)) => {
            check_key(&p.key, false)?;
            if p.lease < 0 {
                return Err(DcsError::Invalid(format!("negative lease id {}", p.lease)));
            }
            Ok(Op::Put {
                key: p.key,
                value: p.value,
                lease: p.lease,
            })
        }
        Some(proto::op::Op::Delete(d)) => {
            check_key(&d.key, d.prefix)?;
            Ok(Op::Delete {
                key: d.key,
                prefix: d.prefix,
            })
        }
        None => Err(DcsError::Invalid("transaction op without put or delete".into())),
    }
}

fn compare_from(c: proto::Compare) -> Result<Compare, DcsError> {
    check_key(&c.key, false)?;
    let target = match c.target {
        Some(proto::compare::Target::Absent(true)) => CompareTarget::Absent,
        Some(proto::compare::Target::ModRevision(rev)) => CompareTarget::ModRevision(rev),
        Some(proto::compare::Target::Value(v)) => CompareTarget::Value(v),
        Some(proto::compare::Target::Absent(false)) | None => {
            return Err(DcsError::Invalid(
                "compare without a target (absent, mod_revision or value)".into(),
            ))
        }
    };
    Ok(Compare { key: c.key, target })
}

/// Validates and converts a transaction request.
pub fn txn_from(req: proto::TxnRequest) -> Result<Txn, DcsError> {
    Ok(Txn {
        compares: req.compare.into_iter().map(compare_from).collect::<Result<_, _>>()?,
        success: req.success.into_iter().map(op_from).collect::<Result<_, _>>()?,
        failure: req.failure.into_iter().map(op_from).collect::<Result<_, _>>()?,
    })
}

/// Validates a range or watch key (or prefix).
pub fn range_key(key: &[u8], prefix: bool, limits: &Limits) -> Result<(), DcsError> {
    check_key(key, prefix)?;
    Ok(limits.check_key(key)?)
}

impl From<Compare> for proto::Compare {
    fn from(c: Compare) -> proto::Compare {
        let target = match c.target {
            CompareTarget::Absent => proto::compare::Target::Absent(true),
            CompareTarget::ModRevision(r) => proto::compare::Target::ModRevision(r),
            CompareTarget::Value(v) => proto::compare::Target::Value(v),
        };
        proto::Compare {
            key: c.key,
            target: Some(target),
        }
    }
}

impl From<Op> for proto::Op {
    fn from(op: Op) -> proto::Op {
        let op = match op {
            Op::Put { key, value, lease } => proto::op::Op::Put(proto::PutOp { key, value, lease }),
            Op::Delete { key, prefix } => proto::op::Op::Delete(proto::DeleteOp { key, prefix }),
        };
        proto::Op { op: Some(op) }
    }
}

impl From<Txn> for proto::TxnRequest {
    fn from(t: Txn) -> proto::TxnRequest {
        proto::TxnRequest {
            compare: t.compares.into_iter().map(Into::into).collect(),
            success: t.success.into_iter().map(Into::into).collect(),
            failure: t.failure.into_iter().map(Into::into).collect(),
        }
    }
}
