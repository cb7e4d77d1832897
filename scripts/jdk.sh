# Sourced by the scripts in this folder: finds a JDK >= 25 (the release the sources compile to) and exports JAVA_HOME and PATH.
# Order: $JAVA_HOME when it is new enough, then the usual install locations, newest first.

ich_java_feature() {  # prints the feature release of the java binary $1 (17, 21, 25, ...)
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1 | cut -d. -f1
}

ich_find_jdk() {
  local min=25 candidates=() c v
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  for c in /usr/lib/jvm/* /opt/java/* /opt/jdk* /usr/local/jdk* "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/*; do
    [ -d "$c" ] && candidates+=("$c")
  done
  local best="" best_v=0
  for c in "${candidates[@]}"; do
    [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    v=$(ich_java_feature "$c/bin/java")
    [[ "$v" =~ ^[0-9]+$ ]] || continue
    if [ "$c" = "${JAVA_HOME:-}" ] && [ "$v" -ge "$min" ]; then best="$c"; best_v=$v; break; fi
    if [ "$v" -ge "$min" ] && [ "$v" -gt "$best_v" ]; then best="$c"; best_v=$v; fi
  done
  if [ -z "$best" ]; then
    echo "ich: no JDK >= $min found (looked at \$JAVA_HOME and /usr/lib/jvm, /opt). Install JDK 25 and set JAVA_HOME." >&2
    return 1
  fi
  export JAVA_HOME="$best"
  export PATH="$JAVA_HOME/bin:$PATH"
}
