"""The fault-injecting OpenAI-compatible server now ships with the package (`synthboot.mock_server`,
also `synthboot mock-server`); tests and bench scripts keep importing it from here."""

from synthboot.mock_server import (FAULTS, BaseUrl, OpenAIServer, RecordedRequest, default_content,  # noqa: F401
                                   fingerprint, free_port, main, serve)

if __name__ == "__main__":
    main()
