//! Auction lots (used goods): bids in log order, proxy bids, anti-sniping, close.
