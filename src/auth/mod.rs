//! Authentication: the server half (tokens, refresh store, endpoints) and the
//! browser half (the client that holds the access token) side by side.
