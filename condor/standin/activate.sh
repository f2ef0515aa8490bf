# Source me: puts caliber's local stand-in HTCondor pool (condor_submit, condor_q, condor_rm) first on PATH.
_caliber_standin_bin="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)/bin"
case ":$PATH:" in *":$_caliber_standin_bin:"*) ;; *) export PATH="$_caliber_standin_bin:$PATH" ;; esac
unset _caliber_standin_bin
