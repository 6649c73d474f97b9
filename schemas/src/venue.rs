//! Venue slots (restaurant reservations): covers per slot, bookings, waitlists.
