//! Building many new documents on every core.
//!
//! The documents of a bulk import share nothing, and building one (its
//! Automerge operations, commit and snapshot encoding) is pure CPU that
//! needs no storage: [`build_in_parallel`] runs [`DocumentBuilder::build`]
//! on worker threads and hands each result to the caller's thread, which
//! alone touches the replica (it stores with [`Replica::store_built`]).
//!
//! Invariants:
//!
//! - **Bounded.** At most [`BUILD_THREADS_MAX`] workers, and at most
//!   [`BUILT_QUEUE_MAX`] built documents wait for the caller, so memory
//!   stays bounded however large the import.
//! - **Every job answers once,** in whatever order builds finish; the answer
//!   carries the job's position so the caller can report per job.
//! - **A panicking job is an answer, not a crash.** It is reported as
//!   [`BuildFailure::Panicked`] and the other jobs go on.
//!
//! [`Replica::store_built`]: civsync_protocol::replica::Replica::store_built

use automerge::AutoCommit;
use civsync_protocol::replica::{BuiltDocument, CommitError, DocumentBuilder};
use civsync_protocol::DocumentId;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};

/// Most worker threads, whatever the machine offers.
pub const BUILD_THREADS_MAX: usize = 8;
/// Most built documents waiting for the caller to store them.
pub const BUILT_QUEUE_MAX: usize = 64;

/// Why one job produced no document.
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure<E> {
    #[error(transparent)]
    Refused(#[from] CommitError<E>),
    #[error("building {document} panicked")]
    Panicked { document: DocumentId },
}

/// What a job produced: the document and its mutation's value.
pub type Built<T, E> = Result<(BuiltDocument, T), BuildFailure<E>>;

/// Worker threads to use here: the cores the process may run on, bounded.
pub fn build_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, BUILD_THREADS_MAX)
}

/// Build every `(document, mutate)` job with `builder` on `threads`
/// workers (clamped to 1..=[`BUILD_THREADS_MAX`]); `on_built` runs on the
/// calling thread with each job's position and result, as builds finish.
pub fn build_in_parallel<J, T, E>(
    builder: &DocumentBuilder,
    jobs: Vec<(DocumentId, J)>,
    threads: usize,
    mut on_built: impl FnMut(usize, Built<T, E>),
) where
    J: FnOnce(&mut AutoCommit) -> Result<T, E> + Send,
    T: Send,
    E: Send,
{
    let threads = threads.clamp(1, BUILD_THREADS_MAX).min(jobs.len().max(1));
    let total = jobs.len();
    let queue: Mutex<VecDeque<(usize, (DocumentId, J))>> =
        Mutex::new(jobs.into_iter().enumerate().collect());
    let (sender, receiver) = mpsc::sync_channel::<(usize, Built<T, E>)>(BUILT_QUEUE_MAX);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let sender = sender.clone();
            let queue = &queue;
            scope.spawn(move || loop {
                // A poisoned queue means a worker panicked while holding the
                // lock, which the pop below cannot do; take the jobs anyway.
                let next = queue
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .pop_front();
                let Some((position, (document, mutate))) = next else {
                    break;
                };
                let answer =
                    match catch_unwind(AssertUnwindSafe(|| builder.build(&document, mutate))) {
                        Ok(Ok(built)) => Ok(built),
                        Ok(Err(refused)) => Err(BuildFailure::Refused(refused)),
                        Err(_) => Err(BuildFailure::Panicked { document }),
                    };
                if sender.send((position, answer)).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        let mut answered = 0;
        for (position, answer) in receiver.iter() {
            on_built(position, answer);
            answered += 1;
        }
        debug_assert_eq!(answered, total, "every job answers once");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use civsync_protocol::replica::{Replica, ReplicaConfig};
    use civsync_protocol::storage::MemoryStorage;
    use civsync_protocol::{Month, StationId};

    fn replica() -> Replica<MemoryStorage> {
        let village = StationId::parse("xh/t1/v1").unwrap();
        Replica::open(MemoryStorage::new(), village, 1, ReplicaConfig::default()).unwrap()
    }

    type Job = Box<dyn FnOnce(&mut AutoCommit) -> Result<u8, String> + Send>;

    fn month_jobs(station: &StationId, months: u8) -> Vec<(DocumentId, Job)> {
        (1..=months)
            .map(|m| {
                let document = DocumentId::activities(station, Month::new(2025, m).unwrap());
                let job: Job = Box::new(move |doc: &mut AutoCommit| {
                    doc.put(automerge::ROOT, "month", i64::from(m))
                        .map_err(|e| e.to_string())?;
                    Ok(m)
                });
                (document, job)
            })
            .collect()
    }

    #[test]
    fn every_job_answers_once_and_the_built_documents_store() {
        let mut replica = replica();
        let station = replica.local().clone();
        let builder = replica.document_builder();
        let mut seen = Vec::new();
        build_in_parallel(&builder, month_jobs(&station, 12), 3, |position, built| {
            let (built, month) = built.unwrap();
            assert_eq!(usize::from(month), position + 1);
            replica.store_built(built).unwrap();
            seen.push(position);
        });
        seen.sort();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        replica.flush().unwrap();
        assert_eq!(replica.documents().len(), 12);
    }

    #[test]
    fn refusals_and_panics_are_answers_and_the_rest_go_on() {
        let replica = replica();
        let station = replica.local().clone();
        let builder = replica.document_builder();
        let mut jobs = month_jobs(&station, 4);
        jobs[1].1 = Box::new(|_| Err("no such volunteer".to_string()));
        jobs[2].1 = Box::new(|_| panic!("a bug in a job"));
        let neighbour = StationId::parse("xh/t1/v2").unwrap();
        jobs[3].0 = DocumentId::roster(&neighbour);
        let mut answers: Vec<(usize, String)> = Vec::new();
        build_in_parallel(&builder, jobs, 2, |position, built| {
            let text = match built {
                Ok((_, month)) => format!("built {month}"),
                Err(BuildFailure::Refused(CommitError::Mutate(reason))) => reason,
                Err(BuildFailure::Refused(CommitError::OutOfScope { .. })) => "out of scope".into(),
                Err(other) => other.to_string(),
            };
            answers.push((position, text));
        });
        answers.sort();
        let texts: Vec<&str> = answers.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "built 1",
                "no such volunteer",
                "building activities:xh/t1/v1:2025-03 panicked",
                "out of scope"
            ]
        );
    }
}
