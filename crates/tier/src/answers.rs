//! Requests a parent sends down a link that the child answers (`Up.answer`, by request id):
//! a node token or a node's removal, which the root's API waits for so that its caller
//! knows the cluster has it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a child has to answer a request.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("{0} is not linked (it is told over its link, which is down)")]
    LinkDown(String),
    #[error("{0} did not answer within {1:?}")]
    NoAnswer(String, Duration),
    #[error("{0} refused: {1}")]
    Refused(String, String),
}

/// The requests waiting for their answer, by id.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    waiting: Mutex<HashMap<u64, oneshot::Sender<String>>>,
}

/// Removes its entry however the wait ends (answered, timed out, caller gone).
pub(crate) struct Question {
    answers: Arc<Answers>,
    pub(crate) id: u64,
    pub(crate) rx: oneshot::Receiver<String>,
}

impl Drop for Question {
    fn drop(&mut self) {
        self.answers.map().remove(&self.id);
    }
}

impl Answers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id (never 0, never one waiting) and the wait for its answer.
    pub(crate) fn ask(self: &Arc<Self>) -> Question {
        let (tx, rx) = oneshot::channel();
        let mut map = self.map();
        let id = loop {
            let id: u64 = rand::random();
            if id != 0 && !map.contains_key(&id) {
                break id;
            }
        };
        map.insert(id, tx);
        Question {
            answers: self.clone(),
            id,
            rx,
        }
    }

    /// Hands `error` ("" = done) to whoever waits for `id`; nobody may (it gave up).
    pub(crate) fn answer(&self, id: u64, error: String) {
        if let Some(tx) = self.map().remove(&id) {
            let _ = tx.send(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_question_once_and_abandoned_ones_are_forgotten() {
        let answers = Arc::new(Answers::default());
        let mut question = answers.ask();
        answers.answer(question.id, "no".into());
        answers.answer(question.id, "again".into());
        assert_eq!((&mut question.rx).await.as_deref(), Ok("no"));
        drop(question);
        let abandoned = answers.ask();
        let id = abandoned.id;
        drop(abandoned);
        assert!(answers.map().is_empty(), "dropped questions leave nothing");
        answers.answer(id, String::new());
    }
}
