//! The notification log (Alertmanager `nflog`).
