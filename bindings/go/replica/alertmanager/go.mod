// The shapes of Grafana's Alertmanager fork (see ../README.md); used through replace only.
module github.com/prometheus/alertmanager

go 1.22
