//! The queue between the HTTP threads and the model thread: each answer wanted is a [`Job`];
//! the model thread takes them in [`Queue::next_batch`] groups that can be generated together.
//!
//! A batch is the oldest waiting job and the waiting jobs with the same generation settings,
//! in arrival order, up to the batch size. After the first job comes, the queue waits up to
//! `linger` for more before it closes a batch short, so requests sent at once are answered
//! together. A sampled job with its own `seed` goes alone: rows of a batch share one random
//! stream, so only alone is its answer the same every time it is asked.
//!
//! The queue is bounded by the HTTP workers: each holds one request (at most `n` = 16 jobs)
//! until it is answered, so at most `workers × 16` jobs wait; further connections wait in the
//! listening socket's backlog.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::source::context::EncodedPrompt;
use safeaware_eval::source::generator::{Generated, LocalSettings};

use super::openai::ApiError;

/// What the model thread sends back for one job.
pub type Reply = Result<Generated, ApiError>;

/// One answer to generate (its prompt encoded and checked against the context by the HTTP
/// worker) and where to send it.
pub struct Job {
    pub prompt: Arc<EncodedPrompt>,
    pub settings: LocalSettings,
    pub reply: Sender<Reply>,
}

impl Job {
    /// Whether `other` may share this job's batch.
    fn batches_with(&self, other: &Job) -> bool {
        self.shares_batches() && self.settings == other.settings
    }

    /// False for a seeded sampled job (see the module docs).
    fn shares_batches(&self) -> bool {
        let d = &self.settings.decoding;
        !(d.mode == DecodingMode::Sample && d.seed.is_some())
    }
}

/// Jobs received and not yet generated.
pub struct Queue {
    rx: Receiver<Job>,
    waiting: VecDeque<Job>,
    max_batch: usize,
    linger: Duration,
}

impl Queue {
    /// A queue of batches of at most `max_batch`, waiting up to `linger` to fill one.
    pub fn new(rx: Receiver<Job>, max_batch: usize, linger: Duration) -> Queue {
        Queue {
            rx,
            waiting: VecDeque::new(),
            max_batch: max_batch.max(1),
            linger,
        }
    }

    /// The next batch of the jobs already sent, without waiting; `None` when none waits.
    pub fn poll_batch(&mut self) -> Option<Vec<Job>> {
        while let Ok(job) = self.rx.try_recv() {
            self.waiting.push_back(job);
        }
        (!self.waiting.is_empty()).then(|| self.take_batch())
    }

    /// Every job waiting or already sent, taken out of the queue (to fail them at shutdown).
    pub fn drain(&mut self) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Some(batch) = self.poll_batch() {
            jobs.extend(batch);
        }
        jobs
    }

    /// The next batch; blocks until a job comes. `None` once every sender is gone and no job
    /// waits.
    pub fn next_batch(&mut self) -> Option<Vec<Job>> {
        if self.waiting.is_empty() {
            self.waiting.push_back(self.rx.recv().ok()?);
        }
        let deadline = Instant::now() + self.linger;
        while self.companions() < self.max_batch && self.waiting[0].shares_batches() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(job) => self.waiting.push_back(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        Some(self.take_batch())
    }

    /// Waiting jobs that can share the oldest one's batch, itself included.
    fn companions(&self) -> usize {
        let first = &self.waiting[0];
        1 + self
            .waiting
            .iter()
            .skip(1)
            .filter(|j| first.batches_with(j))
            .count()
    }

    /// Removes the oldest job and its companions (up to the batch size) from the queue.
    fn take_batch(&mut self) -> Vec<Job> {
        let first = self.waiting.pop_front().expect("a job waits");
        let mut batch = vec![first];
        let mut rest = VecDeque::with_capacity(self.waiting.len());
        for job in self.waiting.drain(..) {
            if batch.len() < self.max_batch && batch[0].batches_with(&job) {
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        self.waiting = rest;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn job(id: &str, mode: DecodingMode, seed: Option<u64>) -> Job {
        let mut settings = LocalSettings::default();
        settings.decoding.mode = mode;
        settings.decoding.seed = seed;
        let encoded = safeaware_data::processor::Encoded {
            input_ids: vec![1, 2],
            labels: None,
            pixel_values: Vec::new(),
            pixel_shape: [0; 4],
            grids: Vec::new(),
            image_grid_thw: Vec::new(),
        };
        Job {
            prompt: Arc::new(EncodedPrompt {
                id: id.into(),
                encoded,
            }),
            settings,
            reply: mpsc::channel().0,
        }
    }

    fn ids(batch: &[Job]) -> Vec<&str> {
        batch.iter().map(|j| j.prompt.id.as_str()).collect()
    }

    #[test]
    fn jobs_with_the_same_settings_share_batches_in_arrival_order() {
        let (tx, rx) = mpsc::channel();
        let mut q = Queue::new(rx, 2, Duration::from_millis(1));
        for (id, mode, seed) in [
            ("g1", DecodingMode::Greedy, None),
            ("s1", DecodingMode::Sample, None),
            ("g2", DecodingMode::Greedy, None),
            ("g3", DecodingMode::Greedy, None),
            ("seeded", DecodingMode::Sample, Some(7)),
            ("s2", DecodingMode::Sample, None),
        ] {
            tx.send(job(id, mode, seed)).unwrap();
        }
        drop(tx);
        let mut batches = Vec::new();
        while let Some(b) = q.next_batch() {
            batches.push(ids(&b).join(","));
        }
        assert_eq!(batches, ["g1,g2", "s1,s2", "g3", "seeded"]);
    }

    #[test]
    fn a_batch_waits_briefly_for_jobs_sent_together() {
        let (tx, rx) = mpsc::channel();
        let mut q = Queue::new(rx, 4, Duration::from_secs(5));
        let sender = std::thread::spawn(move || {
            for i in 0..4 {
                tx.send(job(&format!("g{i}"), DecodingMode::Greedy, None))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let start = Instant::now();
        let batch = q.next_batch().unwrap();
        assert_eq!(ids(&batch), ["g0", "g1", "g2", "g3"]);
        // A full batch closes at once, long before the linger runs out.
        assert!(start.elapsed() < Duration::from_secs(4));
        sender.join().unwrap();
        assert!(q.next_batch().is_none());
    }

    #[test]
    fn polling_takes_what_waits_without_blocking() {
        let (tx, rx) = mpsc::channel();
        let mut q = Queue::new(rx, 2, Duration::from_secs(60));
        let start = Instant::now();
        assert!(q.poll_batch().is_none());
        for id in ["g1", "s1", "g2", "g3"] {
            let mode = match id.starts_with('g') {
                true => DecodingMode::Greedy,
                false => DecodingMode::Sample,
            };
            tx.send(job(id, mode, None)).unwrap();
        }
        assert_eq!(ids(&q.poll_batch().unwrap()), ["g1", "g2"]);
        drop(tx);
        let rest: Vec<String> = q.drain().iter().map(|j| j.prompt.id.clone()).collect();
        assert_eq!(rest, ["s1", "g3"]);
        assert!(q.poll_batch().is_none() && q.next_batch().is_none());
        assert!(start.elapsed() < Duration::from_secs(30), "polling waited");
    }
}
