package hearsay

// How the package finds the library, and nothing else: the one place a build changes.
//
// In this repository the package links target/release/libhearsay.a and reads
// include/hearsay.h, so `cargo build --release --lib` comes first. An installed library
// (`make install`, with its pkg-config file) replaces both lines with
// `#cgo pkg-config: hearsay`.

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include
#cgo LDFLAGS: ${SRCDIR}/../../../target/release/libhearsay.a -lgcc_s -lpthread -lm -ldl -lrt -lutil
*/
import "C"
