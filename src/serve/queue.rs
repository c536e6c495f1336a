//! The queue between the HTTP threads and the model thread: each answer wanted is a [`Job`];
//! the model thread takes them in [`Queue::next_batch`] groups that can be generated together.
//!
//! A batch is the oldest waiting job and the waiting jobs with the same generation settings,
//! in arrival order, up to the batch size. After the first job comes, the queue waits up to
//! `linger` for more before it closes a batch short, so requests sent at once are answered
//! together. A sampled job with its own `seed` goes alone: rows of a batch share one random
//! stream, so only alone is its answer the same every time it is asked.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::source::generator::{Generated, LocalSettings, Prompt};
use safeaware_eval::source::SourceError;

/// One answer to generate and where to send it.
pub struct Job {
    pub prompt: Prompt,
    pub settings: LocalSettings,
    pub reply: Sender<Result<Generated, SourceError>>,
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
        Job {
            prompt: Prompt {
                id: id.into(),
                messages: vec![],
                image_name: String::new(),
            },
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
}
