"""Control: commands from SCADA (MQTT 5 request/response)."""
