//! Silences (Alertmanager `silence`).
