//! The Alertmanager states (and Grafana's flush log) as cluster-layer citizens.

use super::Replicated;
use crate::core::UnixMillis;
use crate::core::state::DecodeError;
use crate::core::state::flushlog::FlushLog;
use crate::core::state::nflog::Nflog;
use crate::core::state::silences::Silences;

impl Replicated for Nflog {
    fn marshal(&self) -> Vec<u8> {
        Nflog::marshal(self)
    }

    fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        Nflog::merge(self, data, now)
    }

    fn gc(&mut self, now: UnixMillis) -> Result<usize, String> {
        Nflog::gc(self, now).map_err(|e| e.to_string())
    }

    fn delimited(&self) -> bool {
        true
    }
}

impl Replicated for Silences {
    fn marshal(&self) -> Vec<u8> {
        Silences::marshal(self)
    }

    fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        Silences::merge(self, data, now)
    }

    fn gc(&mut self, now: UnixMillis) -> Result<usize, String> {
        Silences::gc(self, now).map_err(|e| e.to_string())
    }

    fn delimited(&self) -> bool {
        true
    }
}

impl Replicated for FlushLog {
    fn marshal(&self) -> Vec<u8> {
        FlushLog::marshal(self)
    }

    fn merge(&mut self, data: &[u8], now: UnixMillis) -> Result<usize, DecodeError> {
        FlushLog::merge(self, data, now)
    }

    fn gc(&mut self, now: UnixMillis) -> Result<usize, String> {
        Ok(FlushLog::gc(self, now))
    }

    fn delimited(&self) -> bool {
        true
    }
}
