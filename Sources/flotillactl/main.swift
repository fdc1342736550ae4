import CLI

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

exit(await Flotillactl.run(arguments: Array(CommandLine.arguments.dropFirst())))
