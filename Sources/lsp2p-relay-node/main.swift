import CommandSupport

// `lsp2p-relay relay` execs this: the relay command, built without FFmpeg (see `RelayCommand`).
RelayCommand.mainWithContractExitCodes()
