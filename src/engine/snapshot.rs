//! One inspect, handed to every consumer of one reconcile.
//!
//! The daemon reconciles a container once per event: it inspects it once and hands that result
//! to enforcement, limit diagnosis, the pinned-bind re-check and healing. Those take an engine
//! and a container id (they also serve the one-shot commands, which inspect for themselves), so
//! the daemon hands them this view of the engine: `inspect` of the container under reconcile is
//! answered from the inspect already made, everything else goes to the engine.
//!
//! It must not serve a stale answer: any call that changes a container (create, start, stop,
//! restart, remove, update) drops the kept inspect, so a heal restart followed by its "does it
//! run now" inspect asks the engine again.

use std::sync::Mutex;

use super::*;

/// `engine`, with the inspect of one container already answered.
pub struct Snapshot<'a, E> {
    engine: &'a E,
    kept: Mutex<Option<Container>>,
}

impl<'a, E: Engine> Snapshot<'a, E> {
    /// A view of `engine` that answers `inspect` of the container `inspected` describes (by its
    /// id or its name) with `inspected`, until something changes a container.
    pub fn new(engine: &'a E, inspected: Container) -> Self {
        Snapshot {
            engine,
            kept: Mutex::new(Some(inspected)),
        }
    }

    fn kept_for(&self, id_or_name: &str) -> Option<Container> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.as_ref()
            .filter(|c| c.id == id_or_name || c.name == id_or_name.trim_start_matches('/'))
            .cloned()
    }

    fn forget(&self) {
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl<E: Engine> Engine for Snapshot<'_, E> {
    fn socket(&self) -> &str {
        self.engine.socket()
    }
    async fn info(&self) -> EngineResult<EngineInfo> {
        self.engine.info().await
    }
    async fn list(&self, labels: &[String]) -> EngineResult<Vec<ContainerSummary>> {
        self.engine.list(labels).await
    }
    async fn inspect(&self, id_or_name: &str) -> EngineResult<Option<Container>> {
        match self.kept_for(id_or_name) {
            Some(c) => Ok(Some(c)),
            None => self.engine.inspect(id_or_name).await,
        }
    }
    async fn create(&self, req: &CreateRequest) -> EngineResult<String> {
        self.forget();
        self.engine.create(req).await
    }
    async fn start(&self, id: &str) -> EngineResult<()> {
        self.forget();
        self.engine.start(id).await
    }
    async fn stop(&self, id: &str, timeout_s: i64) -> EngineResult<()> {
        self.forget();
        self.engine.stop(id, timeout_s).await
    }
    async fn restart(&self, id: &str, timeout_s: i64) -> EngineResult<()> {
        self.forget();
        self.engine.restart(id, timeout_s).await
    }
    async fn remove(&self, id: &str) -> EngineResult<()> {
        self.forget();
        self.engine.remove(id).await
    }
    async fn update_resources(&self, id: &str, resources: &Resources) -> EngineResult<()> {
        self.forget();
        self.engine.update_resources(id, resources).await
    }
    async fn disconnect_network(&self, id: &str, network: &str) -> EngineResult<()> {
        self.forget();
        self.engine.disconnect_network(id, network).await
    }
    async fn exec(&self, id: &str, req: &ExecRequest) -> EngineResult<ExecOutput> {
        self.engine.exec(id, req).await
    }
    fn events(&self) -> EventStream {
        self.engine.events()
    }
    fn archive(&self, id: &str, path: &str) -> ByteStream {
        self.engine.archive(id, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    #[tokio::test]
    async fn the_kept_inspect_answers_until_a_container_changes() {
        let engine = FakeEngine::default();
        let id = engine
            .create(&CreateRequest {
                name: "c".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let first = engine.inspect(&id).await.unwrap().unwrap();
        assert_eq!(engine.inspect_count("c"), 1);
        let view = Snapshot::new(&engine, first.clone());
        assert_eq!(view.inspect(&id).await.unwrap(), Some(first.clone()));
        assert_eq!(view.inspect("c").await.unwrap(), Some(first));
        assert_eq!(
            engine.inspect_count("c"),
            1,
            "answered from the kept inspect"
        );
        view.start(&id).await.unwrap();
        let after = view.inspect(&id).await.unwrap().unwrap();
        assert_eq!(
            engine.inspect_count("c"),
            2,
            "a start drops the kept inspect"
        );
        assert!(after.is_running());
    }
}
