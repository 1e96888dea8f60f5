//! `canopy get services -o wide`: each service's row with its name and where its running
//! instances are (a container's own address, or its node for a process, at the service's
//! first port).

use crate::commands::service_table;
use crate::output::Table;
use canopy_model::{Instance, InstanceState};
use canopy_root::records::ServiceView;

pub(crate) fn service_wide_table(services: &[ServiceView], instances: &[Instance]) -> Table {
    let base = service_table(services, true);
    let mut headers = base.headers().to_vec();
    headers.push("INSTANCES");
    let mut table = Table::new(headers);
    for (service, row) in services.iter().zip(base.rows()) {
        let mut row = row.clone();
        row.push(instance_addresses(service, instances));
        table.row(row);
    }
    table
}

fn instance_addresses(service: &ServiceView, instances: &[Instance]) -> String {
    let port = service.spec.ports.first().map(|p| p.port);
    let mut running: Vec<&Instance> = instances
        .iter()
        .filter(|i| {
            (&i.namespace, &i.application, &i.service)
                == (&service.namespace, &service.application, &service.name)
                && i.state == InstanceState::Running
        })
        .collect();
    running.sort_by_key(|i| i.replica);
    let addresses: Vec<String> = running
        .iter()
        .filter_map(|i| {
            let host = i.details.addresses.first().or(i.node.as_ref())?;
            Some(match port {
                Some(port) => format!("{}={host}:{port}", i.replica),
                None => format!("{}={host}", i.replica),
            })
        })
        .collect();
    if addresses.is_empty() {
        "-".to_string()
    } else {
        addresses.join(",")
    }
}
