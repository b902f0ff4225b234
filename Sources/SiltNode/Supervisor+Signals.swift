import Foundation
import Logging
import CSupport

// Stop signals (SIGTERM, SIGINT) → requestStop(), through a self-pipe:
//
//   signal ──▶ C handler (async-signal-safe) ──write 1 byte──▶ pipe ──▶ reader thread
//                                                                      └─▶ requestStop()
//
// Installed by run() for `stopSignals`, removed before run() returns (previous
// dispositions restored, then the write end closed: the reader sees EOF and exits).
// Children never see these handlers: exec resets caught signals, and silt_spawn resets
// every disposition and the mask anyway.
extension Supervisor {
    struct SignalPipe {
        var readFd: Int32
        var writeFd: Int32
        var installed: [Int32]
    }

    func installStopSignalHandlers() -> SignalPipe? {
        guard !stopSignals.isEmpty else { return nil }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            logger.error("cannot create the signal pipe; stop signals are not handled",
                         metadata: ["error": "\(String(cString: strerror(errno)))"])
            return nil
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        var pipe = SignalPipe(readFd: fds[0], writeFd: fds[1], installed: [])
        for sig in stopSignals {
            let rc = silt_signal_notify_install(sig, pipe.writeFd)
            if rc == 0 {
                pipe.installed.append(sig)
            } else {
                logger.error("cannot install a stop signal handler", metadata: [
                    "signal": "\(sig)", "error": "\(String(cString: strerror(rc)))"])
            }
        }
        let readFd = pipe.readFd
        let thread = Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 16)
            while true {
                let n = read(readFd, &buffer, buffer.count)
                if n > 0 {
                    for sig in buffer[0..<n] {
                        self?.logger.info("received stop signal", metadata: ["signal": "\(sig)"])
                        self?.post(.stopRequested(reason: "signal \(sig)"))
                    }
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break  // EOF: run() is returning
                }
            }
            close(readFd)
        }
        thread.name = "silt-signals"
        thread.stackSize = 256 * 1024
        thread.start()
        return pipe
    }

    func removeStopSignalHandlers(_ pipe: SignalPipe?) {
        guard let pipe else { return }
        for sig in pipe.installed { _ = silt_signal_notify_restore(sig) }
        close(pipe.writeFd)
    }
}
