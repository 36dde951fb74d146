#!/bin/sh
# Writes the broker's password file from the environment (run once before the broker starts).
set -eu
: "${MQTT_HUB_PASSWORD:?set MQTT_HUB_PASSWORD}"
: "${MQTT_DEVICE_PASSWORD:?set MQTT_DEVICE_PASSWORD}"
umask 077
: > /mosquitto/data/passwd
mosquitto_passwd -b /mosquitto/data/passwd sharpeye "$MQTT_HUB_PASSWORD"
mosquitto_passwd -b /mosquitto/data/passwd devices "$MQTT_DEVICE_PASSWORD"
chown mosquitto:mosquitto /mosquitto/data/passwd 2>/dev/null || true
