"""Pure mail handling: parsing, document extraction and body-to-comment conversion."""
