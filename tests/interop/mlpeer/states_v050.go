//go:build mlv050

// The v0.5.0 build links no Alertmanager module: -nflog-key and -silences-key are refused
// (newStateLayer stays nil; see states.go).
package main
