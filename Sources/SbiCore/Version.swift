/// The version printed by `--version` and recorded in every archive and output.
public let sbiwatchVersion = "0.1.0"
