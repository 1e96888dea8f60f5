//! Engine answers outside Docker's schema, read as Docker's. Podman's compatible API (4.3)
//! reports a container killed and not yet cleaned up as `stopped`, a state Docker's schema
//! (and so bollard's models) does not have: its inspect and list answers would fail to parse,
//! and such a container could be neither restarted nor re-adopted. Read as `exited`, what it
//! is in Docker's terms.

use bollard::Docker;
use bollard::errors::Error;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::ListContainersOptions;
use serde_json::Value;

/// Podman's container states with no Docker name, and the Docker state each is.
const PODMAN_STATES: &[(&str, &str)] = &[("stopped", "exited"), ("configured", "created")];

/// `GET /containers/{name}/json`.
pub(crate) async fn inspect(
    docker: &Docker,
    name: &str,
) -> Result<ContainerInspectResponse, Error> {
    match docker.inspect_container(name, None).await {
        Err(Error::JsonDataError { contents, .. }) => {
            let mut value: Value = serde_json::from_str(&contents)?;
            if let Some(state) = value.get_mut("State") {
                to_docker(state.get_mut("Status"));
            }
            Ok(serde_json::from_value(value)?)
        }
        answer => answer,
    }
}

/// `GET /containers/json`.
pub(crate) async fn list(
    docker: &Docker,
    options: ListContainersOptions,
) -> Result<Vec<ContainerSummary>, Error> {
    match docker.list_containers(Some(options)).await {
        Err(Error::JsonDataError { contents, .. }) => {
            let mut value: Value = serde_json::from_str(&contents)?;
            if let Some(summaries) = value.as_array_mut() {
                for summary in summaries {
                    to_docker(summary.get_mut("State"));
                }
            }
            Ok(serde_json::from_value(value)?)
        }
        answer => answer,
    }
}

/// Renames a Podman-only state to Docker's.
fn to_docker(state: Option<&mut Value>) {
    let Some(state) = state else { return };
    if let Some((_, docker)) = PODMAN_STATES
        .iter()
        .find(|(podman, _)| state.as_str() == Some(podman))
    {
        *state = Value::from(*docker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerStateStatusEnum;

    #[test]
    fn a_stopped_podman_container_reads_as_exited_and_docker_states_stay() {
        let mut answer = serde_json::json!({"Id": "c1", "State": {"Status": "stopped", "Running": false, "ExitCode": 137}});
        to_docker(answer["State"].get_mut("Status"));
        let inspected: ContainerInspectResponse = serde_json::from_value(answer).unwrap();
        let state = inspected.state.unwrap();
        assert_eq!(state.status, Some(ContainerStateStatusEnum::EXITED));
        assert_eq!(state.exit_code, Some(137));
        let mut running = Value::from("running");
        to_docker(Some(&mut running));
        assert_eq!(running, "running");
    }
}
