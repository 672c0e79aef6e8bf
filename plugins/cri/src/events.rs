//! Container events for `GetContainerEvents` (the kubelet's evented PLEG): created, started,
//! stopped and deleted events from this server's own calls, and stopped events for
//! containers that end on their own, found by a watcher that polls states once a second while
//! anyone subscribes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;

use crate::server::Cri;

#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<cri::ContainerEventResponse>,
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(1024);
        Events { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<cri::ContainerEventResponse> {
        self.tx.subscribe()
    }

    fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }
}

use crate::records::now_nanos;

/// Sends an event about container `id` (with its pod's status and the pod's containers'
/// statuses, as the evented PLEG wants), if anyone listens.
pub fn emit_container(cri: &Cri, id: &str, kind: cri::ContainerEventType) {
    if !cri.events.has_subscribers() {
        return;
    }
    let status = crate::container::status(cri, id, false)
        .ok()
        .and_then(|r| r.status);
    let sandbox_id = crate::container::find(cri, id)
        .ok()
        .flatten()
        .map(|(_, r)| r.sandbox);
    let pod = sandbox_id
        .as_deref()
        .and_then(|s| crate::sandbox::status(cri, s, false).ok())
        .and_then(|r| r.status);
    let ev = cri::ContainerEventResponse {
        container_id: id.to_owned(),
        container_event_type: kind as i32,
        created_at: now_nanos(),
        pod_sandbox_status: pod,
        containers_statuses: status.into_iter().collect(),
    };
    let _ = cri.events.tx.send(ev);
}

/// Starts the watcher thread for containers that end on their own.
pub fn watch(cri: Arc<Cri>) {
    let spawned = std::thread::Builder::new()
        .name("cri-events".into())
        .spawn(move || {
            let mut last: HashMap<String, cri::ContainerState> = HashMap::new();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if !cri.events.has_subscribers() {
                    last.clear();
                    continue;
                }
                let Ok(all) = cri.index.all(&cri) else {
                    continue;
                };
                let mut now = HashMap::new();
                for e in all {
                    let st = e.state();
                    let id = e.c.id();
                    if st == cri::ContainerState::ContainerExited
                        && last.get(id) == Some(&cri::ContainerState::ContainerRunning)
                    {
                        emit_container(&cri, id, cri::ContainerEventType::ContainerStoppedEvent);
                    }
                    now.insert(id.to_owned(), st);
                }
                last = now;
            }
        });
    if let Err(e) = spawned {
        crate::log::warn(format_args!("no container event watcher: {e}"));
    }
}
