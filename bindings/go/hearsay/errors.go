package hearsay

/*
#include "hearsay.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// Sentinel errors, one per result code of the C ABI; test with errors.Is.
var (
	ErrNullParameter   = errors.New("hearsay: a required pointer was NULL")
	ErrInvalidUTF8     = errors.New("hearsay: text is not valid UTF-8")
	ErrInvalidArgument = errors.New("hearsay: invalid argument")
	ErrInvalidConfig   = errors.New("hearsay: invalid configuration")
	ErrIO              = errors.New("hearsay: I/O error")
	ErrCorruptSnapshot = errors.New("hearsay: corrupt snapshot file")
	ErrQueueFull       = errors.New("hearsay: queue full")
	ErrMessageTooLarge = errors.New("hearsay: message too large")
	ErrJoinFailed      = errors.New("hearsay: could not join any peer")
	ErrTimeout         = errors.New("hearsay: timed out")
	ErrClosed          = errors.New("hearsay: node closed")
	ErrInvalidSilence  = errors.New("hearsay: invalid silence")
	ErrSilenceNotFound = errors.New("hearsay: silence not found")
	ErrSilenceLimit    = errors.New("hearsay: silence limit reached")
	ErrNflogRefused    = errors.New("hearsay: notification log refused the entry")
	ErrBufferTooSmall  = errors.New("hearsay: buffer too small")
	ErrNoSuchState     = errors.New("hearsay: no such state under that key")
	ErrFlushLogRefused = errors.New("hearsay: flush log refused the entry")
	ErrPanic           = errors.New("hearsay: internal panic")
)

var sentinels = map[C.hs_result]error{
	C.HS_RESULT_NULL_PARAMETER:    ErrNullParameter,
	C.HS_RESULT_INVALID_UTF8:      ErrInvalidUTF8,
	C.HS_RESULT_INVALID_ARGUMENT:  ErrInvalidArgument,
	C.HS_RESULT_INVALID_CONFIG:    ErrInvalidConfig,
	C.HS_RESULT_IO:                ErrIO,
	C.HS_RESULT_CORRUPT_SNAPSHOT:  ErrCorruptSnapshot,
	C.HS_RESULT_QUEUE_FULL:        ErrQueueFull,
	C.HS_RESULT_MESSAGE_TOO_LARGE: ErrMessageTooLarge,
	C.HS_RESULT_JOIN_FAILED:       ErrJoinFailed,
	C.HS_RESULT_TIMEOUT:           ErrTimeout,
	C.HS_RESULT_CLOSED:            ErrClosed,
	C.HS_RESULT_INVALID_SILENCE:   ErrInvalidSilence,
	C.HS_RESULT_SILENCE_NOT_FOUND: ErrSilenceNotFound,
	C.HS_RESULT_SILENCE_LIMIT:     ErrSilenceLimit,
	C.HS_RESULT_NFLOG_REFUSED:     ErrNflogRefused,
	C.HS_RESULT_BUFFER_TOO_SMALL:  ErrBufferTooSmall,
	C.HS_RESULT_NO_SUCH_STATE:     ErrNoSuchState,
	C.HS_RESULT_FLUSH_LOG_REFUSED: ErrFlushLogRefused,
	C.HS_RESULT_PANIC:             ErrPanic,
}

// Error is a failed call: the C ABI's result code and the library's message. It unwraps to
// the sentinel for its code.
type Error struct {
	Code    uint32
	Message string
}

func (e *Error) Error() string { return "hearsay: " + e.Message }

// Unwrap returns the sentinel error of the code (ErrInvalidSilence, ...).
func (e *Error) Unwrap() error { return sentinels[C.hs_result(e.Code)] }

// call runs one C call and turns a failure into an *Error carrying the thread's message. The
// goroutine stays on its OS thread in between, since the message is kept per thread.
func call(f func() C.hs_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := f()
	if r == C.HS_RESULT_OK {
		return nil
	}
	var buf [512]byte
	var n C.size_t
	msg := ""
	if C.hs_last_error_message((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n) == C.HS_RESULT_OK {
		msg = string(buf[:n])
	}
	return &Error{Code: uint32(r), Message: msg}
}
