"""A module that fails while importing, for the spec tests of bad `module:function` paths."""

raise RuntimeError("this module is broken on purpose")
