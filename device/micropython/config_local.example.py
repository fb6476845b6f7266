# Copy to config_local.py (or let `motcua device provision --counter ...` write it) and copy it to
# the board with the other files:  mpremote cp config_local.py :config_local.py
# Only what differs from the defaults in config.py; a name config.py does not know stops the boot.
device_id = "esp32-0a1b2c"
secret_hex = "0000000000000000000000000000000000000000000000000000000000000000"  # from provisioning
mqtt_host = "192.168.1.10"  # an IP address avoids a blocking DNS lookup at every reconnect
mqtt_port = 1883
mqtt_user = "esp32-0a1b2c"
mqtt_password = "from provisioning"
wifi_ssid = "Mot cua UBND"
wifi_password = "wifi password"
ntp_host = "pool.ntp.org"
# display = True          # an SSD1306 on I2C (SDA 21, SCL 22)
# complaint_pin = None    # no complaint button on this box
