//! The "four orders" (四单) after the first: dispatch (派单), take (接单),
//! rate (评单), and cancel (撤单), as operations over a [`Replica`].
//!
//! A citizen's order lives in its village's `orders:<station>:<YYYY-MM>`
//! document (the month it was placed). That document may be written by the
//! village and every office above it (`DocumentId::writable_by`) and is held
//! by them, so the township or county that dispatches writes into it
//! directly and the village sees the dispatch on its next sync: no document
//! kind of its own, nothing sent sideways (a team's own station, when it is
//! in another subtree, does not hold the village's personal data; the
//! dispatching office records the take on the team's behalf).
//!
//! Rules kept here:
//! - the step is done by this node's station (`replica.local()`), which must
//!   be the order's station or above it;
//! - steps follow `placed → dispatched → taken → rated`; a dispatched order
//!   may be dispatched again to another team until someone takes it; an
//!   order may be cancelled while placed or dispatched, with a reason; a
//!   step out of turn is refused naming `status` and where the order stands;
//! - a dispatch names the team as `<station>:<team id>`; when this node holds
//!   that station's roster, the team must be in it;
//! - a rating is 1 to 5 stars, with an optional comment; texts are bounded;
//! - each step is one commit, writing only the fields it changes, or none.
//!
//! Concurrent steps at two offices (a township and the county dispatching
//! the same order apart) merge like any field: both values are kept and
//! listed by `service::conflicts` for a person to settle.

use crate::domain::model::TEXT_CHARS_MAX;
use crate::domain::model::{self, FieldError, Order, OrderStatus, RecordId};
use crate::faults::{self, Fault};
use crate::identity::document_id::{DocumentId, DocumentKind};
use crate::identity::station::StationId;
use crate::layout;
use crate::replica::Replica;
use crate::service::ServiceError;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};

/// Longest rating comment or cancellation reason, in characters.
pub const ORDER_NOTE_CHARS_MAX: usize = 200;

/// A step of an order after it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum OrderStep {
    /// 派单: hand the order to a team, `<station>:<team id>`.
    Dispatch { team: String },
    /// 接单: the team took it.
    Take,
    /// 评单: the citizen's rating, 1–5 stars.
    Rate {
        rating: u8,
        #[serde(default)]
        comment: String,
    },
    /// 撤单: withdrawn, with the reason.
    Cancel { reason: String },
}

impl OrderStep {
    /// The states this step may start from.
    fn allowed_from(&self) -> &'static [OrderStatus] {
        match self {
            OrderStep::Dispatch { .. } => &[OrderStatus::Placed, OrderStatus::Dispatched],
            OrderStep::Take => &[OrderStatus::Dispatched],
            OrderStep::Rate { .. } => &[OrderStatus::Taken],
            OrderStep::Cancel { .. } => &[OrderStatus::Placed, OrderStatus::Dispatched],
        }
    }
}

/// Do `step` on order `id` of `station`, as this node's station.
pub fn advance_order<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    id: &RecordId,
    step: &OrderStep,
) -> Result<Order, ServiceError> {
    let local = replica.local().clone();
    if !local.is_ancestor_or_self_of(station) {
        return Err(ServiceError::Forbidden {
            reason: format!("{local} may not handle orders of {station}, which is not below it"),
        });
    }
    let (document, order) = find_order(replica, station, id)?;
    let next = apply_step(&order, step, &local)?;
    if let OrderStep::Dispatch { .. } = step {
        check_team_known(replica, next.team.as_deref().unwrap_or_default())?;
    }
    // The injected defect answers an office's step without writing it.
    if faults::armed(Fault::LoseOrderStep) && &local != station {
        return Ok(next);
    }
    replica.commit(&document, |doc| {
        layout::put_order(doc, &next).map_err(|e| ServiceError::Store {
            reason: e.to_string(),
        })
    })?;
    // The injected defect files an office's step a second time.
    if let (true, Some(month)) = (
        faults::armed(Fault::FileOrderTwice) && &local != station,
        document.month(),
    ) {
        replica.commit(&DocumentId::orders(station, month.next()), |doc| {
            layout::put_order(doc, &next).map_err(|e| ServiceError::Store {
                reason: e.to_string(),
            })
        })?;
    }
    Ok(next)
}

/// The order as `step` leaves it, or why the step is refused. Reads and
/// writes nothing.
pub fn apply_step(order: &Order, step: &OrderStep, by: &StationId) -> Result<Order, FieldError> {
    if !step.allowed_from().contains(&order.status) {
        return Err(FieldError::new(
            "status",
            format!(
                "order {} is {} ({}); it cannot be {}: {}",
                order.id,
                order.status.key(),
                order.status.label(),
                past_tense(step),
                what_is_allowed(order.status)
            ),
        ));
    }
    let mut next = order.clone();
    match step {
        OrderStep::Dispatch { team } => {
            let team = parse_team(team)?;
            next.status = OrderStatus::Dispatched;
            next.dispatched_by = Some(by.clone());
            next.team = Some(team);
        }
        OrderStep::Take => next.status = OrderStatus::Taken,
        OrderStep::Rate { rating, comment } => {
            if !(1..=5).contains(rating) {
                return Err(FieldError::new(
                    "rating",
                    format!("{rating} stars; a rating is 1 to 5"),
                ));
            }
            next.status = OrderStatus::Rated;
            next.rating = Some(*rating);
            next.comment = model::text("comment", comment, false, ORDER_NOTE_CHARS_MAX)?;
        }
        OrderStep::Cancel { reason } => {
            next.status = OrderStatus::Cancelled;
            next.comment = model::text("reason", reason, true, ORDER_NOTE_CHARS_MAX)?;
        }
    }
    // Every step moves the order on, except a dispatch to another team.
    debug_assert!(next.status != order.status || matches!(step, OrderStep::Dispatch { .. }));
    Ok(next)
}

fn past_tense(step: &OrderStep) -> &'static str {
    match step {
        OrderStep::Dispatch { .. } => "dispatched",
        OrderStep::Take => "taken",
        OrderStep::Rate { .. } => "rated",
        OrderStep::Cancel { .. } => "cancelled",
    }
}

fn what_is_allowed(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Placed => "dispatch it to a team first",
        OrderStatus::Dispatched => "its team takes it next (or it is dispatched again)",
        OrderStatus::Taken => "the citizen rates it next",
        OrderStatus::Rated | OrderStatus::Cancelled => "it is closed",
    }
}

/// `<station>:<team id>`, checked; returned in its canonical form.
fn parse_team(team: &str) -> Result<String, FieldError> {
    let text = model::text("team", team, true, TEXT_CHARS_MAX)?;
    let Some((station, id)) = text.rsplit_once(':') else {
        return Err(FieldError::new(
            "team",
            format!("{text:?} is not <station>:<team id>, e.g. xh/t1:T1"),
        ));
    };
    let station = StationId::parse(station.trim())
        .map_err(|e| FieldError::new("team", format!("{text:?}: {e}")))?;
    let id = RecordId::parse("team", id.trim())?;
    Ok(format!("{station}:{id}"))
}

/// When the team's station roster is held here, the team must be in it.
fn check_team_known<S: Storage>(replica: &mut Replica<S>, team: &str) -> Result<(), ServiceError> {
    let Some((station, id)) = team.rsplit_once(':') else {
        return Ok(());
    };
    let (Ok(station), Ok(id)) = (StationId::parse(station), RecordId::parse("team", id)) else {
        return Ok(());
    };
    let roster = DocumentId::roster(&station);
    let found = replica
        .with_document(&roster, |doc| layout::team_exists(doc, &id))
        .map_err(|e| ServiceError::Store {
            reason: e.to_string(),
        })?;
    match found {
        // The team's station is elsewhere in the county: not checkable here.
        None => Ok(()),
        Some(Ok(true)) => Ok(()),
        Some(Ok(false)) => Err(ServiceError::NotFound {
            field: "team".to_string(),
            kind: "team",
            id: team.to_string(),
        }),
        Some(Err(e)) => Err(ServiceError::Store {
            reason: e.to_string(),
        }),
    }
}

/// The order `id` of `station` and the document holding it, newest month
/// first.
fn find_order<S: Storage>(
    replica: &mut Replica<S>,
    station: &StationId,
    id: &RecordId,
) -> Result<(DocumentId, Order), ServiceError> {
    let mut documents = replica.documents_where(|document| {
        &document.owner == station && matches!(document.kind, DocumentKind::Orders(_))
    });
    documents.sort_by(|a, b| b.cmp(a));
    for document in documents {
        let found = replica
            .with_document(&document, layout::orders)
            .map_err(|e| ServiceError::Store {
                reason: e.to_string(),
            })?;
        let orders = match found {
            Some(orders) => orders.map_err(|e| ServiceError::Store {
                reason: e.to_string(),
            })?,
            None => continue,
        };
        if let Some(order) = orders.into_iter().find(|order| &order.id == id) {
            return Ok((document, order));
        }
    }
    Err(ServiceError::NotFound {
        field: "order".to_string(),
        kind: "order",
        id: format!("{id} of {station}"),
    })
}

#[cfg(test)]
mod tests;
