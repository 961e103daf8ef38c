// The mlnetdeep command: the tree and its error policy are in CliApp.
return MlNetDeep.Cli.CliApp.Run(args);
