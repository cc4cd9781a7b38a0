// the streaming API server
