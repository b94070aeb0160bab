//! Transmit-limited broadcast queue.
