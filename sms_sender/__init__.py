"""The SMS reply sender process (`python -m sms_sender`): sends the replies gateways queued."""
