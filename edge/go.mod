module github.com/outpost-iot/outpost/edge

go 1.26.0

replace github.com/outpost-iot/outpost/shared => ../shared

replace github.com/outpost-iot/outpost/models => ../models
