//! hephaestus spoke: replica, merge, queries, sync client, daemon and the heph/hephd binaries
