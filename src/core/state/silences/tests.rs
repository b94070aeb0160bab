//! Tests of the silence store.
