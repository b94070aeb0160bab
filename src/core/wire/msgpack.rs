//! msgpack as hashicorp/go-msgpack writes and reads it.
