"""Scheduling (RFC 6638) on the CalDAV gateway.

- `collections`: the principal's scheduling properties, the schedule inbox (a store folder
  of class `schedule-inbox`) and the schedule outbox;
- `implicit`: what an organizer's or attendee's PUT or DELETE sends (REQUEST, REPLY, CANCEL);
- `outbox`: free-busy requests POSTed to the outbox;
- `imip`: iTIP by mail (RFC 6047) to attendees who are not users of the store;
- `tags`: Schedule-Tag and If-Schedule-Tag-Match;
- `identity`: the user's calendar user addresses.

Messages between users of the store are kept and applied by the store itself
(`scheduleMessage`), which checks that the caller sends as itself.
"""
