//! Requests a parent sends down a link that the child answers (`Up.answer`, by request id):
//! a node token or a node's removal, which the root's API waits for so that its caller
//! knows the cluster has it.

use std::time::Duration;

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

/// The requests waiting for their answer ("" = done, else the child's error), by id.
pub(crate) type Answers = crate::waiters::Waiters<String>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_answer_reaches_its_question_once_and_abandoned_ones_are_forgotten() {
        let answers = Arc::new(Answers::default());
        let mut question = answers.register();
        assert_eq!(answers.deliver(question.id, "no".into()), Ok(()));
        assert!(answers.deliver(question.id, "again".into()).is_err());
        assert_eq!((&mut question.rx).await.as_deref(), Ok("no"));
        drop(question);
        let abandoned = answers.register();
        let id = abandoned.id;
        drop(abandoned);
        // A dropped question leaves nothing to answer.
        assert!(answers.deliver(id, String::new()).is_err());
    }
}
