"""The groupware store server: SOAP service, users, storage and blobs."""
